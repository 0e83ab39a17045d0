//! The customer 360 view.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::Account;
use super::activities::{Activity, Task};
use super::contacts::Contact;
use super::opportunities::Opportunity;

/// Deals of one status with totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DealGroup {
    pub count: i64,
    /// Sum of the deals' amounts; null when the caller may not read deal amounts, and
    /// when the deals are in more than one currency (`by_currency` has each sum).
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
    /// Count and sum per currency, most deals first.
    pub by_currency: Vec<CurrencyAmount>,
    /// The most recent deals (at most 20).
    #[schema(value_type = Vec<Opportunity>)]
    pub items: Vec<serde_json::Value>,
}

/// The deals of one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyAmount {
    pub currency: String,
    pub count: i64,
    /// Null when the caller may not read deal amounts.
    #[schema(value_type = Option<String>)]
    pub amount: Option<Decimal>,
}

/// A date worth acting on, e.g. a contact's birthday.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDate {
    pub date: NaiveDate,
    /// `birthday`.
    pub kind: String,
    pub contact_id: Uuid,
    pub name: String,
}

/// Everything about one customer in one request (each list bounded).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOverview {
    #[schema(value_type = Account)]
    pub account: serde_json::Value,
    /// Up to 100 contacts.
    #[schema(value_type = Vec<Contact>)]
    pub contacts: Vec<serde_json::Value>,
    pub open_deals: DealGroup,
    pub won_deals: DealGroup,
    pub lost_deals: DealGroup,
    /// The 30 most recent activities across the account, its contacts and deals.
    pub recent_activities: Vec<Activity>,
    /// Up to 30 open tasks on the account, its contacts and deals.
    pub open_tasks: Vec<Task>,
    /// Contact birthdays in the next 30 days.
    pub key_dates: Vec<KeyDate>,
    /// The 10 most recent quotes on the account's deals (quotes in scope).
    #[schema(value_type = Vec<super::quotes::Quote>)]
    pub recent_quotes: Vec<serde_json::Value>,
    /// The 20 most recent contracts (contracts in scope).
    pub contracts: Vec<super::contracts::Contract>,
    /// The 10 most recent payments (payments in scope).
    pub recent_payments: Vec<super::contracts::Payment>,
    /// What the account owes (payments in scope); null when nothing is contracted.
    pub receivable: Option<super::contracts::Receivable>,
}
