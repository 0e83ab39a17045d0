//! Custom field definitions (the form engine): define, change (re-checking the values
//! already stored), archive and restore. Changes take effect at once for every session
//! (`NOTIFY crm_auth` drops the cached principals and field catalogues).

use crm_db::repo::fields::{self, FieldDefChanges, FieldDefRow, LayoutRow, NewFieldDef};
use crm_db::repo::{audit, pipelines};
use crm_domain::access::Action;
use crm_domain::catalogue::{builtins, formula_inputs, maskable, protected};
use crm_domain::fields::{check_settings, check_value, valid_key, FieldSpec, FieldType, Formula, Mode, Settings};
use crm_domain::FieldError;
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write::{self, double_option};

const RES: &str = "fields";

/// How to bring existing records in line with a changed definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Migration {
    /// Give records whose value no longer fits (or is missing when now required) this
    /// value (or the field's default when `value` is omitted).
    SetDefault {
        #[serde(default)]
        value: Option<Value>,
    },
    /// Leave their values as they are and list them as flagged.
    FlagInvalid,
}

/// A new custom field, by its API field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    pub key: String,
    pub label_zh: String,
    pub label_en: String,
    pub help_text: Option<String>,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub required: bool,
    pub required_from_stage_id: Option<Uuid>,
    pub default_value: Option<Value>,
    #[serde(default)]
    pub position: i32,
    pub group: Option<String>,
    #[serde(default)]
    pub settings: Value,
    #[serde(default)]
    pub filterable: bool,
    #[serde(default)]
    pub searchable: bool,
    pub migration: Option<Migration>,
}

/// A change of a custom field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPatch {
    pub label_zh: Option<String>,
    pub label_en: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub help_text: Option<Option<String>>,
    #[serde(rename = "type")]
    pub field_type: Option<String>,
    pub required: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub required_from_stage_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    pub default_value: Option<Option<Value>>,
    pub position: Option<i32>,
    #[serde(default, deserialize_with = "double_option")]
    pub group: Option<Option<String>>,
    pub settings: Option<Value>,
    pub filterable: Option<bool>,
    pub searchable: Option<bool>,
    pub migration: Option<Migration>,
}

use crate::org::notify_changed;

fn field_type(v: &str) -> AppResult<FieldType> {
    FieldType::parse(v).ok_or_else(|| AppError::field("type", "invalid_choice", "no such field type"))
}

fn trimmed(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A definition as submitted, before checks.
struct Draft<'a> {
    object: &'a str,
    key: &'a str,
    field_type: FieldType,
    settings: &'a Value,
    default: Option<&'a Value>,
    required_from_stage: Option<Uuid>,
}

/// Checks a definition as a whole; returns the parsed settings and normalised default.
fn check_definition(
    c: &mut PgConnection,
    draft: Draft<'_>,
    others: &[FieldDefRow],
) -> AppResult<(Settings, Option<Value>)> {
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
        Err(e) => return Err(AppError::field("settings", "invalid", e.to_string())),
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
        Err(AppError::Validation(errs))
    }
}

/// Stored values that break a (new) definition: invalid ones and, when required,
/// missing ones. Then applies the migration, or refuses with a count.
fn reconcile(
    c: &mut PgConnection,
    object: &str,
    spec: &FieldSpec,
    required: bool,
    default: Option<&Value>,
    migration: Option<&Migration>,
) -> AppResult<()> {
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
            Err(AppError::conflict(
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
                AppError::field("migration.value", "required", "give a value (the field has no default)")
            })?;
            let v = check_value(spec, &raw, Mode::Write)
                .map_err(|e| AppError::field("migration.value", e.code, e.message))?;
            if v.is_null() {
                return Err(AppError::field(
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
fn search_kind(t: FieldType) -> bool {
    matches!(
        t,
        FieldType::Text | FieldType::LongText | FieldType::Email | FieldType::Phone | FieldType::Url
    )
}

fn check_searchable(searchable: bool, t: FieldType) -> AppResult<()> {
    if searchable && !search_kind(t) {
        return Err(AppError::field(
            "searchable",
            "not_searchable",
            "only text, long text, e-mail, phone and URL fields can be searchable",
        ));
    }
    Ok(())
}

fn index_kind(t: FieldType) -> bool {
    t.is_numeric()
        || t.is_temporal()
        || matches!(
            t,
            FieldType::Text | FieldType::SingleSelect | FieldType::Email | FieldType::Phone | FieldType::Url
        )
}

/// Defines a custom field of `object`. Values are validated on every write; stored
/// values that break a required field need a `migration`.
pub fn create(c: &mut PgConnection, ctx: &Ctx, object: &str, fields_in: &Map<String, Value>) -> AppResult<FieldDefRow> {
    ctx.require(RES, Action::Admin)?;
    let dto: FieldInput = write::parse(fields_in)?;
    if !valid_key(&dto.key) {
        return Err(AppError::field(
            "key",
            "invalid_format",
            "snake_case: lower-case letters, digits and _, starting with a letter",
        ));
    }
    if builtins(object).iter().any(|b| b.key == dto.key) || dto.key == "custom" {
        return Err(AppError::field("key", "reserved", "a built-in field has this name"));
    }
    let t = field_type(&dto.field_type)?;
    check_searchable(dto.searchable, t)?;
    let others = fields::list(c, object, true)?;
    if others.iter().any(|d| d.key == dto.key) {
        return Err(AppError::conflict(
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
    let new = NewFieldDef {
        id: Uuid::now_v7(),
        object: object.into(),
        key: dto.key.clone(),
        label_zh: dto.label_zh.trim().into(),
        label_en: dto.label_en.trim().into(),
        help_text: trimmed(dto.help_text),
        field_type: t.as_str().into(),
        required: dto.required,
        required_from_stage_id: dto.required_from_stage_id,
        default_value: default,
        position: dto.position,
        group_name: trimmed(dto.group),
        settings: serde_json::to_value(&settings).unwrap_or_default(),
        filterable: dto.filterable,
        searchable: dto.searchable,
    };
    let row = fields::insert(c, &new)?;
    if dto.filterable && index_kind(t) {
        fields::create_index(c, object, &row.key, t)?;
    }
    if dto.searchable {
        fields::create_search_index(c, object, &row.key)?;
    }
    write::created(c, ctx, RES, row.id)?;
    // Records a `set_default` migration gave the new value to.
    audit::record_pending(c, &ctx.actor(), object, "migrated")?;
    notify_changed(c)?;
    Ok(row)
}

/// Changes a custom field. Narrowing its type or settings, or making it required,
/// re-checks every stored value: when some would break, the change is refused with
/// their count unless a `migration` says what to do.
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    (object, key): (&str, &str),
    expected: Option<i32>,
    fields_in: &Map<String, Value>,
) -> AppResult<FieldDefRow> {
    ctx.require(RES, Action::Admin)?;
    let dto: FieldPatch = write::parse(fields_in)?;
    let t_in = dto.field_type.as_deref().map(field_type).transpose()?;
    let before = fields::find(c, object, key, true)?.ok_or(AppError::NotFound("field"))?;
    let version = before.version;
    let row = write::change_locked(c, ctx, (RES, before.id), before, (version, expected), |c, before| {
        let others: Vec<FieldDefRow> = fields::list(c, object, true)?
            .into_iter()
            .filter(|d| d.key != key)
            .collect();
        let t = t_in.unwrap_or(before.field_type());
        let settings_in = dto.settings.clone().unwrap_or_else(|| before.settings.clone());
        let default_in = dto
            .default_value
            .clone()
            .unwrap_or_else(|| before.default_value.clone());
        let stage = dto.required_from_stage_id.unwrap_or(before.required_from_stage_id);
        let draft = Draft {
            object,
            key,
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
            key: key.to_owned(),
            field_type: t,
            settings: settings.clone(),
        };
        let narrowing = t != before.field_type() || dto.settings.is_some() || (required && !before.required);
        if narrowing {
            reconcile(c, object, &spec, required, default.as_ref(), dto.migration.as_ref())?;
        }
        let ch = FieldDefChanges {
            label_zh: dto.label_zh.as_deref().map(|l| l.trim().to_owned()),
            label_en: dto.label_en.as_deref().map(|l| l.trim().to_owned()),
            help_text: dto.help_text.clone().map(trimmed),
            field_type: Some(t.as_str().to_owned()),
            required: Some(required),
            required_from_stage_id: Some(stage),
            default_value: Some(default),
            position: dto.position,
            group_name: dto.group.clone().map(trimmed),
            settings: Some(serde_json::to_value(&settings).unwrap_or_default()),
            filterable: dto.filterable,
            searchable: Some(searchable),
            archived_at: None,
        };
        let after = fields::update(c, before.id, &ch)?;
        if after.filterable && index_kind(t) {
            if !before.filterable || before.field_type() != t {
                fields::create_index(c, object, key, t)?;
            }
        } else if before.filterable {
            fields::drop_index(c, object, key)?;
        }
        match (before.searchable, after.searchable) {
            (false, true) => fields::create_search_index(c, object, key)?,
            (true, false) => fields::drop_search_index(c, object, key)?,
            _ => {}
        }
        Ok(Some(after))
    })?;
    audit::record_pending(c, &ctx.actor(), object, "migrated")?;
    notify_changed(c)?;
    Ok(row)
}

/// Archives a field (it leaves forms and responses; stored values are kept) or
/// restores it with the values it had.
pub fn set_archived(
    c: &mut PgConnection,
    ctx: &Ctx,
    (object, key): (&str, &str),
    archived: bool,
) -> AppResult<FieldDefRow> {
    ctx.require(RES, Action::Admin)?;
    let before = fields::find(c, object, key, true)?.ok_or(AppError::NotFound("field"))?;
    if before.archived_at.is_some() == archived {
        return Ok(before);
    }
    let ch = FieldDefChanges {
        archived_at: Some(archived.then(|| ctx.now())),
        ..FieldDefChanges::default()
    };
    let after = fields::update(c, before.id, &ch)?;
    let change = json!({"archived": {"before": !archived, "after": archived}});
    let action = if archived { "archived" } else { "restored" };
    let changes = change.as_object().cloned().unwrap_or_default();
    audit::record(
        c,
        &ctx.actor(),
        RES,
        after.id,
        action,
        changes,
        json!({"object": object, "key": key}),
    )?;
    notify_changed(c)?;
    Ok(after)
}

/// A section of a form layout.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Section {
    pub title_zh: String,
    pub title_en: String,
    /// Built-in keys and `custom.<key>`, each once in the layout.
    pub fields: Vec<String>,
}

/// Saves the form layout of an object (per pipeline for deals): sections of known
/// fields, each field once (`layout.saved`).
pub fn save_layout(
    c: &mut PgConnection,
    ctx: &Ctx,
    (object, pipeline_id): (&str, Option<Uuid>),
    name: &str,
    sections: &[Section],
) -> AppResult<LayoutRow> {
    ctx.require(RES, Action::Admin)?;
    if let Some(p) = pipeline_id {
        if object != "opportunities" {
            return Err(AppError::field(
                "pipeline_id",
                "not_allowed",
                "only opportunity layouts are per pipeline",
            ));
        }
        pipelines::find(c, p)?.ok_or_else(|| AppError::field("pipeline_id", "not_found", "no such pipeline"))?;
    }
    let defs = fields::list(c, object, false)?;
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, s) in sections.iter().enumerate() {
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
            let at = format!("sections[{i}].fields[{j}]");
            if !known {
                errs.push(FieldError::new(at, "not_found", format!("no field `{f}`")));
            } else if seen.contains(&f.as_str()) {
                errs.push(FieldError::new(at, "duplicate", "a field appears once"));
            }
            seen.push(f);
        }
    }
    if !errs.is_empty() {
        return Err(AppError::Validation(errs));
    }
    let existing = fields::find_layout_exact(c, object, pipeline_id)?;
    let value = serde_json::to_value(sections).unwrap_or_default();
    let row = fields::upsert_layout(c, existing.as_ref(), object, pipeline_id, name.trim(), &value)?;
    let mut changes = Map::new();
    changes.insert(
        "sections".into(),
        json!({"before": existing.map(|e| e.sections), "after": value}),
    );
    let detail = json!({"object": object, "pipeline_id": pipeline_id});
    audit::record(c, &ctx.actor(), "layouts", row.id, "saved", changes, detail)?;
    Ok(row)
}

/// Sets what a role may see of restricted fields: (object, field, access) with access
/// `hidden`, `masked` or `read_only`. Fields every reader sees cannot be restricted;
/// only text-like fields can be masked. Takes effect at once (`role.field_permissions_updated`).
pub fn set_field_permissions(
    c: &mut PgConnection,
    ctx: &Ctx,
    role_id: Uuid,
    items: &[(String, String, String)],
) -> AppResult<()> {
    ctx.require("roles", Action::Admin)?;
    crm_db::repo::roles::find_for_update(c, role_id)?.ok_or(AppError::NotFound("role"))?;
    let mut errs = Vec::new();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for (i, (object, field, access)) in items.iter().enumerate() {
        // The field's type, when the object has such a field.
        let field_type: Option<String> = match field.strip_prefix("custom.") {
            Some(_) if !fields::OBJECTS.contains(&object.as_str()) => None,
            Some(k) => fields::find(c, object, k, false)?.map(|d| d.field_type),
            None => builtins(object)
                .iter()
                .find(|b| b.key == field)
                .map(|b| b.field_type.to_owned()),
        };
        let Some(field_type) = field_type else {
            errs.push(FieldError::new(
                format!("items[{i}].field"),
                "not_found",
                format!("{object} has no field `{field}`"),
            ));
            continue;
        };
        if protected(object).contains(&field.as_str()) {
            let msg = format!("every reader of {object} sees `{field}`");
            errs.push(FieldError::new(format!("items[{i}].field"), "not_restrictable", msg));
        } else if access == "masked" && !maskable(&field_type) {
            let msg = format!("a {field_type} field can be hidden or read-only, not masked");
            errs.push(FieldError::new(format!("items[{i}].access"), "not_maskable", msg));
        } else if rows.iter().any(|(o, f, _)| o == object && f == field) {
            errs.push(FieldError::new(
                format!("items[{i}].field"),
                "duplicate",
                "listed twice",
            ));
        }
        rows.push((object.clone(), field.clone(), access.clone()));
    }
    if !errs.is_empty() {
        return Err(AppError::Validation(errs));
    }
    let before = fields::role_restrictions(c, role_id)?;
    fields::set_role_restrictions(c, role_id, &rows)?;
    let mut changes = Map::new();
    changes.insert("field_permissions".into(), json!({"before": before, "after": rows}));
    let detail = json!({"role_id": role_id});
    audit::record(
        c,
        &ctx.actor(),
        "roles",
        role_id,
        "field_permissions_updated",
        changes,
        detail,
    )?;
    notify_changed(c)
}
