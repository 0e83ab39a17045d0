//! Form engine: `/admin/fields/{object}`, role field permissions, `/meta/{object}`,
//! layouts.

use actix_web::{delete, get, patch, post, put, web, HttpRequest, HttpResponse};
use crm_db::repo::fields::{self, FieldDefChanges, FieldDefRow, NewFieldDef};
use crm_db::repo::{audit, pipelines, roles};
use crm_domain::access::Action;
use crm_domain::diff;
use crm_domain::fields::{
    check_settings, check_value, valid_key, FieldAccess, FieldSpec, FieldType, Formula, Mode, Settings,
};
use crm_domain::FieldError;
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::{notify_auth_changed, Auth};
use crate::dto::fields::{
    AccessDto, CreateField, FieldDefinition, FieldList, FieldListQuery, FieldObject, FieldPermissions,
    FieldRestriction, FieldTypeDto, FlaggedList, FlaggedValue, Layout, LayoutQuery, LayoutSection, Meta, MetaField,
    MetaOption, Migration, PutLayout, RestrictedObject, Restriction, UpdateField,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::handlers::{
    with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::idempotency::{self, Outcome};
use crate::meta::{builtins, formula_inputs};
use crate::state::AppState;

const RES: &str = "fields";

fn object(raw: &str) -> ApiResult<&'static str> {
    fields::OBJECTS
        .iter()
        .copied()
        .find(|o| *o == raw)
        .ok_or_else(|| ApiError::not_found("object"))
}

fn to_json(d: &FieldDefinition) -> Value {
    serde_json::to_value(d).unwrap_or_default()
}

mod definitions;
mod layouts;
mod metadata;
mod permissions;

pub use definitions::*;
pub use layouts::*;
pub use metadata::*;
pub use permissions::*;
