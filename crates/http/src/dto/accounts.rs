//! Account (customer) bodies.

use chrono::{DateTime, Utc};
use crm_db::repo::accounts::AccountRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

str_enum! {
    /// Kind of account.
    AccountType { Customer => "customer", Prospect => "prospect", Partner => "partner", Competitor => "competitor" }
}

str_enum! {
    /// Customer tier by value, activity and potential (A highest).
    Tier { A => "A", B => "B", C => "C", D => "D" }
}

str_enum! {
    /// Where a customer or lead came from.
    Source {
        Website => "website", Campaign => "campaign", Event => "event", Referral => "referral",
        ColdCall => "cold_call", Partner => "partner", Other => "other"
    }
}

/// A customer account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub account_type: AccountType,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub address: Option<String>,
    /// Normalised phone number (digits, optional leading +).
    pub phone: Option<String>,
    /// Normalised (lower-case) e-mail address.
    pub email: Option<String>,
    pub website: Option<String>,
    pub tier: Option<Tier>,
    pub source: Option<Source>,
    pub parent_id: Option<Uuid>,
    pub owner_id: Uuid,
    /// The owner's team when the owner was set.
    pub team_id: Option<Uuid>,
    pub notes: Option<String>,
    /// Latest follow-up logged on the record.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Custom field values by key (see `GET /meta/{object}`).
    #[schema(value_type = Object)]
    pub custom: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-locking version; send it back as `If-Match: "<version>"`.
    pub version: i32,
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            id: r.id,
            name: r.name,
            account_type: AccountType::parse(&r.account_type).unwrap_or(AccountType::Prospect),
            industry: r.industry,
            region: r.region,
            address: r.address,
            phone: r.phone,
            email: r.email,
            website: r.website,
            tier: r.tier.as_deref().and_then(Tier::parse),
            source: r.source.as_deref().and_then(Source::parse),
            parent_id: r.parent_id,
            owner_id: r.owner_id,
            team_id: r.team_id,
            notes: r.notes,
            last_activity_at: r.last_activity_at,
            custom: r.custom,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `POST /accounts`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    /// Defaults to `prospect`.
    #[serde(rename = "type", default)]
    pub account_type: Option<AccountType>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub industry: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub region: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub address: Option<String>,
    #[validate(length(max = 40))]
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    #[validate(length(max = 254))]
    #[schema(max_length = 254)]
    pub email: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub website: Option<String>,
    pub tier: Option<Tier>,
    pub source: Option<Source>,
    pub parent_id: Option<Uuid>,
    /// Defaults to the caller; another owner needs `accounts:assign`.
    pub owner_id: Option<Uuid>,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub notes: Option<String>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /accounts/{id}`: absent fields stay, `null` clears.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub account_type: Option<AccountType>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100)]
    #[validate(length(max = 100))]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100)]
    #[validate(length(max = 100))]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    #[validate(length(max = 500))]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 40)]
    #[validate(length(max = 40))]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 254)]
    #[validate(length(max = 254))]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    #[validate(length(max = 500))]
    pub website: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Tier>)]
    pub tier: Option<Option<Tier>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Source>)]
    pub source: Option<Option<Source>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
    /// Reassigning needs `accounts:assign`; the team follows the new owner.
    pub owner_id: Option<Uuid>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    #[validate(length(max = 10000))]
    pub notes: Option<Option<String>>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Query of `GET /accounts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Comma-separated sort keys, `-` for descending: `name`, `created_at`, `updated_at`.
    /// Default `-created_at`.
    pub sort: Option<String>,
    /// Search in name, phone and e-mail (substring, works for Chinese).
    pub q: Option<String>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub account_type: Option<AccountType>,
    pub industry: Option<String>,
    pub region: Option<String>,
    #[param(inline)]
    pub tier: Option<Tier>,
    #[param(inline)]
    pub source: Option<Source>,
    pub parent_id: Option<Uuid>,
    /// Created at or after (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Updated at or after (RFC 3339).
    pub updated_after: Option<DateTime<Utc>>,
    /// Updated before (RFC 3339).
    pub updated_before: Option<DateTime<Utc>>,
    /// Delta sync: records changed after this instant, in `updated_at` order, plus
    /// `deleted_ids` (ids deleted since) on the first page. `sort` must be omitted.
    pub updated_since: Option<DateTime<Utc>>,
}

/// Query of `POST /accounts` and `POST /contacts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Create even when a record with the same name, phone or e-mail exists.
    #[serde(default)]
    pub allow_duplicate: bool,
}

/// Query of history endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One audit entry: who changed what, when, with field-level before/after.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub request_id: Option<String>,
    /// created, updated, deleted, restored, ...
    pub action: String,
    /// `{field: {"before": ..., "after": ...}}`
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
}

impl From<crm_db::repo::audit::AuditRow> for AuditEntry {
    fn from(r: crm_db::repo::audit::AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            occurred_at: r.occurred_at,
            actor_id: r.actor_id,
            api_key_id: r.api_key_id,
            request_id: r.request_id,
            action: r.action,
            changes: r.changes,
        }
    }
}
