//! Form engine: `/admin/fields/{object}`, role field permissions, `/meta/{object}`,
//! layouts.

use actix_web::{delete, get, patch, post, put, web, HttpRequest, HttpResponse};
use crm_db::repo::fields::{self, FieldDefRow};
use crm_db::repo::roles;
use crm_domain::access::Action;
use crm_domain::fields::{FieldAccess, FieldType, Settings};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Auth;
use crate::dto::fields::{
    AccessDto, CreateField, FieldDefinition, FieldList, FieldListQuery, FieldObject, FieldPermissions,
    FieldRestriction, FieldTypeDto, FlaggedList, FlaggedValue, Layout, LayoutQuery, Meta, MetaField, MetaOption,
    PutLayout, RestrictedObject, Restriction, UpdateField,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::handlers::{
    run_op, with_etag, BadRequest, BodyErrors, Conflict, NotFound, ReadErrors, Unauthorized, VersionErrors,
};
use crate::idempotency::{self, Outcome};
use crate::meta::builtins;
use crate::state::AppState;

const RES: &str = "fields";

fn object(raw: &str) -> ApiResult<&'static str> {
    fields::OBJECTS
        .iter()
        .copied()
        .find(|o| *o == raw)
        .ok_or_else(|| ApiError::not_found("object"))
}

mod definitions;
mod layouts;
mod metadata;
mod permissions;

pub use definitions::*;
pub use layouts::*;
pub use metadata::*;
pub use permissions::*;
