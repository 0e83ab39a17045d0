//! Form engine bodies: custom field definitions, field permissions, metadata, layouts.

use chrono::{DateTime, Utc};
use crm_db::repo::fields::{FieldDefRow, LayoutRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

str_enum! {
    /// Type of a field.
    FieldTypeDto {
        Text => "text", LongText => "long_text", Integer => "integer", Decimal => "decimal", Money => "money",
        Percent => "percent", Date => "date", Datetime => "datetime", Boolean => "boolean",
        SingleSelect => "single_select", MultiSelect => "multi_select", Email => "email", Phone => "phone",
        Url => "url", UserRef => "user_ref", RecordRef => "record_ref", Formula => "formula"
    }
}

str_enum! {
    /// Objects that carry custom fields.
    FieldObject { Accounts => "accounts", Contacts => "contacts", Leads => "leads", Opportunities => "opportunities" }
}

str_enum! {
    /// Objects whose fields a role can restrict: those with custom fields, and products
    /// and quotes (standard cost, cost totals, margins).
    RestrictedObject {
        Accounts => "accounts", Contacts => "contacts", Leads => "leads", Opportunities => "opportunities",
        Products => "products", Quotes => "quotes"
    }
}

str_enum! {
    /// A role's restriction on a field.
    Restriction { Hidden => "hidden", Masked => "masked", ReadOnly => "read_only" }
}

str_enum! {
    /// The caller's access to a field.
    AccessDto { Full => "full", ReadOnly => "read_only", Masked => "masked" }
}

/// A custom field definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldDefinition {
    pub id: Uuid,
    pub object: String,
    /// Stable snake_case key; values live under `custom.<key>`.
    pub key: String,
    pub label_zh: String,
    pub label_en: String,
    pub help_text: Option<String>,
    #[serde(rename = "type")]
    pub field_type: FieldTypeDto,
    pub required: bool,
    /// Opportunities: required when entering this stage and every later one.
    pub required_from_stage_id: Option<Uuid>,
    /// Any JSON value the field's type accepts (a string, number, boolean or list).
    #[schema(value_type = Value)]
    pub default_value: Option<Value>,
    pub position: i32,
    pub group: Option<String>,
    /// Type settings: max_length, pattern, precision, scale, min, max, options
    /// (key, label_zh, label_en, color, retired), target, expr.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Filters and sorts on this field use a dedicated index.
    pub filterable: bool,
    /// The list's `q` search also looks in this field (text-like types; trigram index).
    pub searchable: bool,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<FieldDefRow> for FieldDefinition {
    fn from(r: FieldDefRow) -> Self {
        FieldDefinition {
            id: r.id,
            field_type: FieldTypeDto::parse(&r.field_type).unwrap_or(FieldTypeDto::Text),
            object: r.object,
            key: r.key,
            label_zh: r.label_zh,
            label_en: r.label_en,
            help_text: r.help_text,
            required: r.required,
            required_from_stage_id: r.required_from_stage_id,
            default_value: r.default_value,
            position: r.position,
            group: r.group_name,
            settings: r.settings,
            filterable: r.filterable,
            searchable: r.searchable,
            archived: r.archived_at.is_some(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldList {
    pub items: Vec<FieldDefinition>,
}

/// How to bring existing records in line with a changed definition.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Migration {
    /// Give records whose value no longer fits (or is missing when now required) this value
    /// (or the field's default when `value` is omitted).
    SetDefault {
        #[serde(default)]
        /// Any JSON value the field's type accepts.
        #[schema(value_type = Value)]
        value: Option<Value>,
    },
    /// Leave their values as they are and list them under `.../flagged`.
    FlagInvalid,
}

/// Body of `POST /admin/fields/{object}`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateField {
    #[validate(length(min = 1, max = 40))]
    #[schema(min_length = 1, max_length = 40)]
    pub key: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub label_zh: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub label_en: String,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub help_text: Option<String>,
    #[serde(rename = "type")]
    pub field_type: FieldTypeDto,
    #[serde(default)]
    pub required: bool,
    pub required_from_stage_id: Option<Uuid>,
    /// Any JSON value the field's type accepts (a string, number, boolean or list).
    #[schema(value_type = Value)]
    pub default_value: Option<Value>,
    #[serde(default)]
    pub position: i32,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub group: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Value,
    #[serde(default)]
    pub filterable: bool,
    /// Include in the list's `q` search (text, long text, e-mail, phone, URL).
    #[serde(default)]
    pub searchable: bool,
    /// Needed when `required` is set and existing records have no value.
    pub migration: Option<Migration>,
}

/// Body of `PATCH /admin/fields/{object}/{key}`; the key is immutable.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateField {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub label_zh: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub label_en: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[validate(length(max = 2000))]
    pub help_text: Option<Option<String>>,
    /// Changing the type re-checks every stored value.
    #[serde(rename = "type")]
    pub field_type: Option<FieldTypeDto>,
    pub required: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub required_from_stage_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    /// Any JSON value the field's type accepts; null clears it.
    #[schema(value_type = Value)]
    pub default_value: Option<Option<Value>>,
    pub position: Option<i32>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100)]
    #[validate(length(max = 100))]
    pub group: Option<Option<String>>,
    /// Replaces the settings; narrowing them re-checks every stored value.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    pub filterable: Option<bool>,
    pub searchable: Option<bool>,
    /// Required when the change would make stored values invalid or missing.
    pub migration: Option<Migration>,
}

/// A value left invalid by a definition change.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlaggedValue {
    pub record_id: Uuid,
    /// The stored value, whatever its JSON type.
    #[schema(value_type = Value)]
    pub value: Option<Value>,
    /// `invalid_after_change` or `missing_required`.
    pub reason: String,
    pub flagged_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlaggedList {
    pub items: Vec<FlaggedValue>,
}

/// A select option in metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetaOption {
    pub key: String,
    pub label_zh: String,
    pub label_en: String,
    pub color: Option<String>,
    pub retired: bool,
}

/// One field as a client renders it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetaField {
    /// Built-in name, or `custom.<key>`.
    pub key: String,
    pub custom: bool,
    pub label_zh: String,
    pub label_en: String,
    pub help_text: Option<String>,
    #[serde(rename = "type")]
    pub field_type: FieldTypeDto,
    pub required: bool,
    pub required_from_stage_id: Option<Uuid>,
    /// Set by the system or through another endpoint (never in create/update bodies).
    pub system: bool,
    /// What the caller may do with it.
    pub access: AccessDto,
    pub options: Vec<MetaOption>,
    pub group: Option<String>,
    pub position: i32,
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Filter and sort with `<key>=`, `<key>_gte=`, `<key>_lte=`, `sort=<key>`.
    pub filterable: bool,
    /// The list's `q` search looks in this field.
    pub searchable: bool,
}

/// Every field of an object the caller can see (hidden ones are left out).
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    pub object: String,
    pub fields: Vec<MetaField>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldRestriction {
    pub object: RestrictedObject,
    /// Built-in field name or `custom.<key>`.
    pub field: String,
    pub access: Restriction,
}

/// A role's field restrictions (fields not listed are fully accessible).
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldPermissions {
    #[validate(length(max = 500))]
    #[schema(max_items = 500)]
    pub items: Vec<FieldRestriction>,
}

/// A section of a form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutSection {
    pub title_zh: String,
    pub title_en: String,
    /// Field keys in order (built-in names or `custom.<key>`).
    pub fields: Vec<String>,
}

/// A form layout.
#[derive(Debug, Serialize, ToSchema)]
pub struct Layout {
    pub id: Uuid,
    pub object: String,
    pub pipeline_id: Option<Uuid>,
    pub name: String,
    pub sections: Vec<LayoutSection>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<LayoutRow> for Layout {
    fn from(r: LayoutRow) -> Self {
        Layout {
            id: r.id,
            object: r.object,
            pipeline_id: r.pipeline_id,
            name: r.name,
            sections: serde_json::from_value(r.sections).unwrap_or_default(),
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `PUT /admin/layouts/{object}`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutLayout {
    /// Opportunities only: a layout for one pipeline.
    pub pipeline_id: Option<Uuid>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(min = 1, max = 50))]
    #[schema(min_items = 1, max_items = 50)]
    pub sections: Vec<LayoutSection>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LayoutQuery {
    /// The layout of this pipeline when there is one, else the object's general one.
    pub pipeline_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FieldListQuery {
    /// Include archived fields.
    #[serde(default)]
    pub include_archived: bool,
}
