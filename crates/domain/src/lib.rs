//! Domain layer of the CRM: types, rules and pure functions. No IO, no framework types.

pub mod access;
pub mod approvals;
pub mod calendar;
pub mod catalogue;
pub mod cron;
pub mod diff;
pub mod events;
pub mod expr;
pub mod fields;
pub mod integrations;
pub mod listing;
pub mod money;
pub mod normalize;
pub mod pipeline;
pub mod reports;
pub mod rules;
pub mod secrets;
pub mod status;
pub mod validation;

pub use access::{Action, Grant, PermissionSet, Principal, Scope};
pub use validation::FieldError;
