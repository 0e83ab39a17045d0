//! The caller's own profile and permissions.

use std::collections::BTreeMap;

use crm_domain::access::{Action, Scope};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::str_enum;

str_enum! {
    /// Which records a permission reaches.
    DataScope { Own => "own", Team => "team", TeamAndBelow => "team_and_below", All => "all" }
}

impl From<Scope> for DataScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Own => DataScope::Own,
            Scope::Team => DataScope::Team,
            Scope::TeamAndBelow => DataScope::TeamAndBelow,
            Scope::All => DataScope::All,
        }
    }
}

impl From<DataScope> for Scope {
    fn from(s: DataScope) -> Self {
        match s {
            DataScope::Own => Scope::Own,
            DataScope::Team => Scope::Team,
            DataScope::TeamAndBelow => Scope::TeamAndBelow,
            DataScope::All => Scope::All,
        }
    }
}

str_enum! {
    /// What a permission allows.
    PermissionAction {
        Read => "read", Create => "create", Update => "update", Delete => "delete",
        Export => "export", Assign => "assign", Reopen => "reopen", Admin => "admin"
    }
}

impl From<Action> for PermissionAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Read => PermissionAction::Read,
            Action::Create => PermissionAction::Create,
            Action::Update => PermissionAction::Update,
            Action::Delete => PermissionAction::Delete,
            Action::Export => PermissionAction::Export,
            Action::Assign => PermissionAction::Assign,
            Action::Reopen => PermissionAction::Reopen,
            Action::Admin => PermissionAction::Admin,
        }
    }
}

impl From<PermissionAction> for Action {
    fn from(a: PermissionAction) -> Self {
        match a {
            PermissionAction::Read => Action::Read,
            PermissionAction::Create => Action::Create,
            PermissionAction::Update => Action::Update,
            PermissionAction::Delete => Action::Delete,
            PermissionAction::Export => Action::Export,
            PermissionAction::Assign => Action::Assign,
            PermissionAction::Reopen => Action::Reopen,
            PermissionAction::Admin => Action::Admin,
        }
    }
}

/// One granted permission: `resource:action` with a data scope.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// e.g. `accounts`, `contacts`, `users`.
    pub resource: String,
    pub action: PermissionAction,
    pub scope: DataScope,
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub team_id: Option<Uuid>,
    /// Role keys, e.g. `sales_rep`.
    pub roles: Vec<String>,
    pub permissions: Vec<Permission>,
    /// Read scope per resource: what lists and searches will show.
    pub data_scope: BTreeMap<String, DataScope>,
    /// Set when authenticated with an API key.
    pub api_key_id: Option<Uuid>,
}
