//! Organisation bodies: users, teams, roles, API keys.

use chrono::{DateTime, Utc};
use crm_db::repo::{api_keys::ApiKeyRow, roles::RoleRow, teams::TeamRow, users::UserRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::me::Permission;
use super::{double_option, str_enum};

str_enum! {
    /// Level of a team in the organisation tree.
    TeamKind { Company => "company", Region => "region", Department => "department", Team => "team" }
}

/// A team (node of the organisation tree).
#[derive(Debug, Serialize, ToSchema)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub kind: TeamKind,
    pub parent_id: Option<Uuid>,
    /// The region value records carry (`region`, e.g. `east`) that this team covers;
    /// the default territory rule assigns new leads of that region to it.
    pub region: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<TeamRow> for Team {
    fn from(r: TeamRow) -> Self {
        Team {
            id: r.id,
            name: r.name,
            kind: TeamKind::parse(&r.kind).unwrap_or(TeamKind::Team),
            parent_id: r.parent_id,
            region: r.region,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Every team; build the tree with `parent_id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    pub items: Vec<Team>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub kind: TeamKind,
    pub parent_id: Option<Uuid>,
    /// The region value (as on leads and accounts) this team covers.
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub region: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub kind: Option<TeamKind>,
    /// Move under another team (`null` makes it a root). Cycles are refused.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
    /// The region value this team covers (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = 100))]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub region: Option<Option<String>>,
}

/// A user as seen by admins.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    /// Role keys.
    pub roles: Vec<String>,
    pub is_active: bool,
    /// A service user for integrations (API keys); cannot log in with a password.
    pub is_service: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    /// Failed logins since the last successful one (only on `GET /admin/users/{id}`).
    pub login_security: Option<LoginSecurity>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

/// Failed logins of an account since its last successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginSecurity {
    pub failed_since_login: i32,
    pub last_failed_at: Option<DateTime<Utc>>,
    /// Client address of the last failure.
    pub last_failed_from: Option<String>,
}

impl User {
    pub fn from_row(r: UserRow, roles: Vec<String>) -> Self {
        User {
            id: r.id,
            email: r.email,
            name: r.name,
            phone: r.phone,
            team_id: r.team_id,
            manager_id: r.manager_id,
            roles,
            is_active: r.is_active,
            is_service: r.is_service,
            last_login_at: r.last_login_at,
            login_security: None,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// A user as seen in the directory (owner pickers and the like).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    pub is_active: bool,
}

impl From<UserRow> for UserSummary {
    fn from(r: UserRow) -> Self {
        UserSummary {
            id: r.id,
            name: r.name,
            email: r.email,
            team_id: r.team_id,
            manager_id: r.manager_id,
            is_active: r.is_active,
        }
    }
}

#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[validate(length(min = 3, max = 254))]
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// At least 8 characters. Omit for service users.
    #[validate(length(min = 8, max = 256))]
    #[schema(min_length = 8, max_length = 256)]
    pub password: Option<String>,
    #[validate(length(max = 40))]
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    /// Role keys, e.g. `["sales_rep"]`.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub is_service: bool,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("email", &self.email)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[validate(length(min = 3, max = 254))]
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Sets a new password and signs the user out everywhere.
    #[validate(length(min = 8, max = 256))]
    #[schema(min_length = 8, max_length = 256)]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 40)]
    #[validate(length(max = 40))]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub team_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub manager_id: Option<Option<Uuid>>,
    /// Replaces the user's roles.
    pub roles: Option<Vec<String>>,
    /// `false` disables the user: login refused, tokens and sessions stop working.
    pub is_active: Option<bool>,
}

impl std::fmt::Debug for UpdateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUser")
            .field("email", &self.email)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Query of user lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `name`, `email`, `created_at`, `-` for descending. Default `name`.
    pub sort: Option<String>,
    /// Search in name and e-mail.
    pub q: Option<String>,
    pub team_id: Option<Uuid>,
    pub is_active: Option<bool>,
    /// Role key.
    pub role: Option<String>,
}

/// A role with its permissions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Role {
    pub id: Uuid,
    /// Stable key, e.g. `sales_rep`.
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    /// Seeded by the system; cannot be changed or deleted.
    pub builtin: bool,
    pub permissions: Vec<Permission>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl Role {
    pub fn from_row(r: RoleRow, permissions: Vec<Permission>) -> Self {
        Role {
            id: r.id,
            key: r.key,
            name: r.name,
            description: r.description,
            builtin: r.builtin,
            permissions,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub items: Vec<Role>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    /// Lower-case letters, digits and `_`, starting with a letter (2..50).
    #[validate(length(min = 2, max = 50))]
    #[schema(min_length = 2, max_length = 50)]
    pub key: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    #[validate(length(max = 2000))]
    pub description: Option<Option<String>>,
    /// Replaces the role's permissions.
    pub permissions: Option<Vec<Permission>>,
}

/// A resource of the permission model and the actions it supports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourcePermissions {
    pub resource: String,
    pub actions: Vec<super::me::PermissionAction>,
}

/// The permission catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionCatalog {
    pub resources: Vec<ResourcePermissions>,
    pub scopes: Vec<super::me::DataScope>,
}

/// An API key (never includes the secret after creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The service user the key acts as.
    pub user_id: Uuid,
    /// The only role the key has.
    pub role_id: Uuid,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: r.id,
            name: r.name,
            user_id: r.user_id,
            role_id: r.role_id,
            prefix: r.prefix,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A new API key; `key` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The secret. Store it now: it cannot be shown again.
    pub key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKey>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// A service user (`is_service`), e.g. the DingTalk integration.
    pub user_id: Uuid,
    /// Role key the key acts with.
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
}
