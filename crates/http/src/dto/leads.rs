//! Lead bodies.

use chrono::{DateTime, NaiveDate, Utc};
use crm_db::repo::leads::LeadRow;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::accounts::{AccountType, Source};
use super::{double_option, str_enum};

str_enum! {
    /// Where a lead stands against its response SLA: `pending` (unanswered, not yet
    /// due), `met` (answered by the due time), `breached` (answered late, or
    /// unanswered at the due time).
    SlaStatus { Pending => "pending", Met => "met", Breached => "breached" }
}

str_enum! {
    /// new -> assigned -> contacted -> qualified | disqualified -> converted.
    LeadStatusDto {
        New => "new", Assigned => "assigned", Contacted => "contacted", Qualified => "qualified",
        Disqualified => "disqualified", Converted => "converted"
    }
}

/// A lead.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lead {
    pub id: Uuid,
    pub person_name: String,
    pub company: Option<String>,
    pub title: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: Source,
    pub campaign: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Option<String>, example = "50000.00")]
    pub estimated_budget: Option<Decimal>,
    pub notes: Option<String>,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub status: LeadStatusDto,
    pub disqualify_reason: Option<String>,
    pub assigned_at: Option<DateTime<Utc>>,
    /// Set by the first activity logged on the lead.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Minutes from assignment to first response.
    pub response_minutes: Option<i64>,
    /// When the first response is due (the response SLA, `PUT /admin/settings/lead-sla`),
    /// set at assignment; none for a lead never assigned.
    pub sla_due_at: Option<DateTime<Utc>>,
    /// Stored: `met` / `breached` at the first response; `breached` within a minute
    /// of the due time when unanswered (the `sla=` filter is exact at any moment).
    #[schema(inline)]
    pub sla_status: Option<SlaStatus>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub converted_at: Option<DateTime<Utc>>,
    pub converted_account_id: Option<Uuid>,
    pub converted_contact_id: Option<Uuid>,
    pub converted_opportunity_id: Option<Uuid>,
    /// Custom field values by key (see `GET /meta/{object}`).
    #[schema(value_type = Object)]
    pub custom: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<LeadRow> for Lead {
    fn from(r: LeadRow) -> Self {
        let response_minutes = match (r.assigned_at, r.first_response_at) {
            (Some(a), Some(f)) => Some((f - a).num_minutes().max(0)),
            _ => None,
        };
        Lead {
            id: r.id,
            person_name: r.person_name,
            company: r.company,
            title: r.title,
            mobile: r.mobile,
            phone: r.phone,
            email: r.email,
            source: Source::parse(&r.source).unwrap_or(Source::Other),
            campaign: r.campaign,
            region: r.region,
            industry: r.industry,
            tags: r.tags,
            estimated_budget: r.estimated_budget,
            notes: r.notes,
            owner_id: r.owner_id,
            team_id: r.team_id,
            status: LeadStatusDto::parse(&r.status).unwrap_or(LeadStatusDto::New),
            disqualify_reason: r.disqualify_reason,
            assigned_at: r.assigned_at,
            first_response_at: r.first_response_at,
            response_minutes,
            sla_due_at: None,
            sla_status: None,
            last_activity_at: r.last_activity_at,
            converted_at: r.converted_at,
            converted_account_id: r.converted_account_id,
            converted_contact_id: r.converted_contact_id,
            converted_opportunity_id: r.converted_opportunity_id,
            custom: r.custom,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `POST /leads`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLead {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub person_name: String,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub company: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    #[validate(length(max = 40))]
    #[schema(max_length = 40)]
    pub mobile: Option<String>,
    #[validate(length(max = 40))]
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    #[validate(length(max = 254))]
    #[schema(max_length = 254)]
    pub email: Option<String>,
    pub source: Source,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub campaign: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub region: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub industry: Option<String>,
    #[serde(default)]
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub tags: Vec<String>,
    #[schema(value_type = Option<String>, example = "50000.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub estimated_budget: Option<Decimal>,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub notes: Option<String>,
    /// Assign straight away to this owner (needs `leads:assign` unless it is the caller).
    /// Without it the lead is new and owned by its creator.
    pub owner_id: Option<Uuid>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /leads/{id}`; converted leads are read-only.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLead {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub person_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    #[validate(length(max = 200))]
    pub company: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    #[validate(length(max = 200))]
    pub title: Option<Option<String>>,
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
    pub source: Option<Source>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    #[validate(length(max = 200))]
    pub campaign: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100)]
    #[validate(length(max = 100))]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100)]
    #[validate(length(max = 100))]
    pub industry: Option<Option<String>>,
    #[validate(length(max = 20))]
    #[schema(max_items = 20)]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::decimal_str::nullable")]
    #[schema(value_type = Option<String>)]
    pub estimated_budget: Option<Option<Decimal>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    #[validate(length(max = 10000))]
    pub notes: Option<Option<String>>,
    /// contacted, qualified or disqualified (with `disqualify_reason`); assignment and
    /// conversion have their own endpoints.
    pub status: Option<LeadStatusDto>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub disqualify_reason: Option<String>,
    /// Custom field values by key (see `GET /meta/{object}`); `null` clears a value.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Query of `GET /leads`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeadListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `person_name`, `created_at`, `updated_at`; `-` for descending. Default `-created_at`.
    pub sort: Option<String>,
    /// Search in name, company, phones and e-mail.
    pub q: Option<String>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<LeadStatusDto>,
    #[param(inline)]
    pub source: Option<Source>,
    pub campaign: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    /// Leads carrying this tag.
    pub tag: Option<String>,
    /// `true`: new or assigned and not yet answered (the response-SLA queue).
    pub unanswered: Option<bool>,
    /// Leads by response-SLA standing now: `pending`, `met` or `breached`.
    #[param(inline)]
    pub sla: Option<SlaStatus>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    /// Delta sync: changed after this instant plus `deleted_ids` (first page).
    pub updated_since: Option<DateTime<Utc>>,
}

/// Body of `POST /leads/assign`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignLeads {
    #[validate(length(min = 1, max = 500))]
    #[schema(min_items = 1, max_items = 500)]
    pub lead_ids: Vec<Uuid>,
    pub owner_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignResult {
    pub items: Vec<Lead>,
}

/// The account side of a conversion: link an existing account or create one.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertAccount {
    /// Link this existing (visible) account instead of creating one.
    pub id: Option<Uuid>,
    /// Name of the new account; defaults to the lead's company (or person).
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub account_type: Option<AccountType>,
    /// Create even when a visible account has the same name, phone or e-mail.
    #[serde(default)]
    pub allow_duplicate: bool,
}

/// The optional opportunity of a conversion.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertOpportunity {
    /// Defaults to "<company> - <person>".
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Defaults to the default pipeline.
    pub pipeline_id: Option<Uuid>,
    /// Defaults to the lead's estimated budget.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub amount: Option<Decimal>,
    pub expected_close_date: Option<NaiveDate>,
}

/// Body of `POST /leads/{id}/convert`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertLead {
    #[validate(nested)]
    pub account: Option<ConvertAccount>,
    /// Link this existing contact of the account instead of creating one.
    pub contact_id: Option<Uuid>,
    /// Also open an opportunity.
    #[validate(nested)]
    pub opportunity: Option<ConvertOpportunity>,
}

/// What a conversion produced (the same on every repeat).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversionResult {
    pub lead: Lead,
    pub account_id: Uuid,
    pub contact_id: Uuid,
    pub opportunity_id: Option<Uuid>,
}

impl Lead {
    /// The lead with its response SLA.
    pub fn with_sla(mut self, sla: Option<&crm_db::repo::leads::SlaRow>) -> Lead {
        if let Some(s) = sla {
            self.sla_due_at = Some(s.due_at);
            self.sla_status = SlaStatus::parse(&s.status);
        }
        self
    }
}

/// Leads as the API shows them, with their SLAs (one query for all).
pub fn leads_out(c: &mut diesel::PgConnection, rows: Vec<LeadRow>) -> diesel::QueryResult<Vec<Lead>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let slas = crm_db::repo::leads::slas(c, &ids)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let id = r.id;
            Lead::from(r).with_sla(slas.iter().find(|s| s.lead_id == id))
        })
        .collect())
}

/// One lead as the API shows it.
pub fn lead_out(c: &mut diesel::PgConnection, row: LeadRow) -> diesel::QueryResult<Lead> {
    Ok(leads_out(c, vec![row])?
        .pop()
        .unwrap_or_else(|| unreachable!("one lead in, one out")))
}

impl From<SlaStatus> for crm_domain::status::SlaStanding {
    fn from(s: SlaStatus) -> Self {
        match s {
            SlaStatus::Pending => crm_domain::status::SlaStanding::Pending,
            SlaStatus::Met => crm_domain::status::SlaStanding::Met,
            SlaStatus::Breached => crm_domain::status::SlaStanding::Breached,
        }
    }
}
