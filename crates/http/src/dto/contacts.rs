//! Contact bodies.

use chrono::{DateTime, NaiveDate, Utc};
use crm_db::repo::contacts::ContactRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, str_enum};

str_enum! {
    /// The contact's role in buying decisions.
    DecisionRole {
        DecisionMaker => "decision_maker", Influencer => "influencer", User => "user", Gatekeeper => "gatekeeper"
    }
}

/// A person at an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Contact {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub title: Option<String>,
    pub department: Option<String>,
    /// Normalised mobile number.
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub wechat: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub decision_role: Option<DecisionRole>,
    pub preferences: Option<String>,
    pub pain_points: Option<String>,
    pub notes: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
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

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        Contact {
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            title: r.title,
            department: r.department,
            mobile: r.mobile,
            phone: r.phone,
            email: r.email,
            wechat: r.wechat,
            birthday: r.birthday,
            decision_role: r.decision_role.as_deref().and_then(DecisionRole::parse),
            preferences: r.preferences,
            pain_points: r.pain_points,
            notes: r.notes,
            owner_id: r.owner_id,
            team_id: r.team_id,
            last_activity_at: r.last_activity_at,
            custom: r.custom,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `POST /contacts`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    /// The account this person works at; must be visible to the caller.
    pub account_id: Uuid,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub department: Option<String>,
    #[validate(length(max = 40))]
    #[schema(max_length = 40)]
    pub mobile: Option<String>,
    #[validate(length(max = 40))]
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    #[validate(length(max = 254))]
    #[schema(max_length = 254)]
    pub email: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub wechat: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub decision_role: Option<DecisionRole>,
    #[validate(length(max = 5000))]
    #[schema(max_length = 5000)]
    pub preferences: Option<String>,
    #[validate(length(max = 5000))]
    #[schema(max_length = 5000)]
    pub pain_points: Option<String>,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub notes: Option<String>,
    /// Defaults to the caller; another owner needs `contacts:assign`.
    pub owner_id: Option<Uuid>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /contacts/{id}`: absent fields stay, `null` clears.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    /// Move the contact to another (visible) account.
    pub account_id: Option<Uuid>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    #[validate(length(max = 200))]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    #[validate(length(max = 200))]
    pub department: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 40)]
    #[validate(length(max = 40))]
    pub mobile: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 40)]
    #[validate(length(max = 40))]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 254)]
    #[validate(length(max = 254))]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100)]
    #[validate(length(max = 100))]
    pub wechat: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub birthday: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DecisionRole>)]
    pub decision_role: Option<Option<DecisionRole>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 5000)]
    #[validate(length(max = 5000))]
    pub preferences: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 5000)]
    #[validate(length(max = 5000))]
    pub pain_points: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    #[validate(length(max = 10000))]
    pub notes: Option<Option<String>>,
    /// Reassigning needs `contacts:assign`; the team follows the new owner.
    pub owner_id: Option<Uuid>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Query of `GET /contacts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Comma-separated sort keys, `-` for descending: `name`, `created_at`, `updated_at`.
    /// Default `-created_at`.
    pub sort: Option<String>,
    /// Search in name, mobile, phone and e-mail.
    pub q: Option<String>,
    pub account_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    #[param(inline)]
    pub decision_role: Option<DecisionRole>,
    /// Created at or after (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Updated at or after (RFC 3339).
    pub updated_after: Option<DateTime<Utc>>,
    /// Updated before (RFC 3339).
    pub updated_before: Option<DateTime<Utc>>,
    /// Delta sync: records changed after this instant plus `deleted_ids` (first page).
    pub updated_since: Option<DateTime<Utc>>,
}
